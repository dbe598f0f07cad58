// One kernel table per ISA build; the addon picks one at load.
#include "kernels.h"

namespace ecomla {
namespace ECOMLA_NS {
#define STR2(x) #x
#define STR(x) STR2(x)
const Kernels& table() {
#define ECOMLA_ENTRY(ret, name, args) name,
  static const Kernels k = {STR(ECOMLA_NS), ECOMLA_KERNEL_LIST(ECOMLA_ENTRY)};
#undef ECOMLA_ENTRY
  return k;
}
}  // namespace ECOMLA_NS
}  // namespace ecomla
