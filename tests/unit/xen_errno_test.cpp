#include <gtest/gtest.h>

#include "xen-compat/errno.hpp"

using namespace moat;

TEST(XenErrno, EveryStatusHasAGuestVisibleErrno) {
    for (int s = 0; s <= static_cast<int>(Status::hw_error); s++) {
        auto st = static_cast<Status>(s);
        xen::Errno e = xen::errno_for(st);
        if (st == Status::ok) EXPECT_EQ(xen::to_guest(e), 0);
        else EXPECT_LT(xen::to_guest(e), 0) << to_string(st);
    }
    EXPECT_EQ(xen::to_guest(xen::errno_for(Status::not_found)), -2);
    EXPECT_EQ(xen::to_guest(xen::errno_for(Status::denied)), -1);
    EXPECT_EQ(xen::to_guest(xen::errno_for(Status::unsupported)), -95);
}
