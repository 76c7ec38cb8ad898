// CPU identity in host builds: each thread poses as one CPU, CPU 0 unless a test says otherwise.
#include <stdio.h>
#include <stdlib.h>

#include "arch/cpu.hpp"

namespace moat::arch {

namespace {
thread_local unsigned t_cpu_id = 0;
}  // namespace

unsigned cpu_id() { return t_cpu_id; }

Status cpu_init(unsigned id) {
    if (id >= kMaxCpus) return Status::out_of_range;
    t_cpu_id = id;
    return Status::ok;
}

namespace host {
void set_cpu_id(unsigned id) {
    if (cpu_init(id) != Status::ok) {
        fprintf(stderr, "host: set_cpu_id(%u): only %u CPUs\n", id, kMaxCpus);
        abort();
    }
}
}  // namespace host

}  // namespace moat::arch
