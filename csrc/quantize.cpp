#include "module.h"
namespace featcodec {
void register_quantize(pybind11::module_&) {}
}
