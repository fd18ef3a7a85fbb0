// Each area of the compiled core registers its functions on the one module, featcodec._core.
#pragma once
#include <pybind11/pybind11.h>

namespace featcodec {
void register_quantize(pybind11::module_& m);
void register_rans(pybind11::module_& m);
void register_lloydmax(pybind11::module_& m);
void register_units(pybind11::module_& m);
void register_hadamard(pybind11::module_& m);
void register_varints(pybind11::module_& m);
void register_packed_levels(pybind11::module_& m);
void register_pool(pybind11::module_& m);
}  // namespace featcodec
