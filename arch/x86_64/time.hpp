#pragma once
namespace moat::arch {
// Sets the TSC rate from the PIT; false (the guess stays) when the PIT does not answer.
bool calibrate_tsc();
}  // namespace moat::arch
