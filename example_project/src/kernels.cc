// CPU kernels on DLPack tensors, exported through the tvm-ffi C ABI.
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/object.h>
#include <tvm/ffi/reflection/registry.h>

#include <cstdint>

namespace example_kernels {

namespace ffi = tvm::ffi;

// Every kernel takes 1-D, contiguous float32 tensors on the CPU; anything else is a
// ValueError or TypeError raised in the caller's language.
static int64_t CheckVector(const ffi::TensorView& t, const char* name) {
  if (t.device().device_type != kDLCPU) {
    TVM_FFI_THROW(ValueError) << name << " must be on the CPU";
  }
  DLDataType dtype = t.dtype();
  if (dtype.code != kDLFloat || dtype.bits != 32 || dtype.lanes != 1) {
    TVM_FFI_THROW(TypeError) << name << " must be float32";
  }
  if (t.ndim() != 1) {
    TVM_FFI_THROW(ValueError) << name << " must be 1-D, got " << t.ndim() << " dimensions";
  }
  if (!t.IsContiguous()) {
    TVM_FFI_THROW(ValueError) << name << " must be contiguous";
  }
  return t.shape()[0];
}

static void CheckSameLength(int64_t a, int64_t b, const char* name) {
  if (a != b) {
    TVM_FFI_THROW(ValueError) << "length mismatch: " << name << " has " << b
                              << " elements, expected " << a;
  }
}

// out = x + 1
void AddOne(ffi::TensorView x, ffi::TensorView out) {
  int64_t n = CheckVector(x, "x");
  CheckSameLength(n, CheckVector(out, "out"), "out");
  const float* xs = static_cast<const float*>(x.data_ptr());
  float* os = static_cast<float*>(out.data_ptr());
  for (int64_t i = 0; i < n; ++i) os[i] = xs[i] + 1.0f;
}

// out = a * x + y
void Axpy(double a, ffi::TensorView x, ffi::TensorView y, ffi::TensorView out) {
  int64_t n = CheckVector(x, "x");
  CheckSameLength(n, CheckVector(y, "y"), "y");
  CheckSameLength(n, CheckVector(out, "out"), "out");
  const float* xs = static_cast<const float*>(x.data_ptr());
  const float* ys = static_cast<const float*>(y.data_ptr());
  float* os = static_cast<float*>(out.data_ptr());
  const float af = static_cast<float>(a);
  for (int64_t i = 0; i < n; ++i) os[i] = af * xs[i] + ys[i];
}

// sum(x), accumulated in double
double Total(ffi::TensorView x) {
  int64_t n = CheckVector(x, "x");
  const float* xs = static_cast<const float*>(x.data_ptr());
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += xs[i];
  return sum;
}

TVM_FFI_DLL_EXPORT_TYPED_FUNC(add_one, AddOne);
TVM_FFI_DLL_EXPORT_TYPED_FUNC(axpy, Axpy);
TVM_FFI_DLL_EXPORT_TYPED_FUNC(total, Total);

// A stateful object: the running mean of every value passed to update().
class RunningMeanObj : public ffi::Object {
 public:
  int64_t count = 0;
  double mean = 0.0;

  RunningMeanObj() = default;

  void Update(ffi::TensorView x) {
    int64_t n = CheckVector(x, "x");
    const float* xs = static_cast<const float*>(x.data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      ++count;
      mean += (static_cast<double>(xs[i]) - mean) / static_cast<double>(count);
    }
  }

  static constexpr bool _type_mutable = true;
  TVM_FFI_DECLARE_OBJECT_INFO_FINAL("example_kernels.RunningMean", RunningMeanObj, ffi::Object);
};

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::ObjectDef<RunningMeanObj>()
      .def(refl::init<>())
      .def_ro("count", &RunningMeanObj::count, "how many values were seen")
      .def_ro("mean", &RunningMeanObj::mean, "their mean")
      .def("update", &RunningMeanObj::Update, "fold a 1-D float32 tensor into the mean");
}

}  // namespace example_kernels
