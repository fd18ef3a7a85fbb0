#include "module.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "featcodec compiled core: interval quantization, inverse lookup, rANS coding, grouped-table statistics, Hadamard rotation, varints and packed levels.";
  featcodec::register_quantize(m);
  featcodec::register_rans(m);
  featcodec::register_lloydmax(m);
  featcodec::register_units(m);
  featcodec::register_hadamard(m);
  featcodec::register_varints(m);
  featcodec::register_packed_levels(m);
  featcodec::register_pool(m);
}
