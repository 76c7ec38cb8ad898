// The engine is a header template; instantiating the two target configurations here compiles them
// into every build (host and image), so a format or policy error shows up without a test using it.
#include "common/iopt/memory.hpp"
#include "common/iopt/page_table.hpp"

namespace moat::iopt {

template class PageTable<Stage1, PoolMemory>;
template class PageTable<Stage2, PoolMemory>;

}  // namespace moat::iopt
