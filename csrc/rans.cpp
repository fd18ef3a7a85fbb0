#include "module.h"
namespace featcodec {
void register_rans(pybind11::module_&) {}
}
