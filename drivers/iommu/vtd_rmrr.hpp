// RMRRs (DMAR reserved memory regions): firmware's promise that a device keeps reaching
// [base, limit] (a USB controller's legacy keyboard buffer, a GPU's stolen memory) after the OS
// takes over. Whoever builds a device's domain maps them 1:1 into it before attaching, or the
// device faults on memory firmware already told it to use.
#pragma once
#include "common/acpi_dmar.hpp"
#include "common/io_domain.hpp"

namespace moat {

// Maps every RMRR of `dmar` that names `bdf` on `segment` identity, read/write, into `d`.
// ok with `mapped` counting the regions (0: none names the device). A region beyond the
// domain's input size, or one that collides with a mapping already there, is refused naming
// the RMRR's offset in the table; what was mapped before the refusal is unmapped again.
Status map_rmrrs(const acpi::Dmar& dmar, uint16_t segment, uint16_t bdf, IoDomain& d, unsigned& mapped, Why& why);

}  // namespace moat
