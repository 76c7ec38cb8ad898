// The x86_64 image's console and exit device.
#pragma once
#include "drivers/serial/serial.hpp"

namespace moat::arch {

constexpr uint16_t kCom1 = 0x3f8;           // the 16550 QEMU's -nographic shows
constexpr uint16_t kDebugExitPort = 0xf4;   // -device isa-debug-exit,iobase=0xf4,iosize=0x04

void set_console(Serial* s);

}  // namespace moat::arch
