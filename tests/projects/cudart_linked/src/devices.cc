#include <cuda_runtime_api.h>

extern "C" int device_count() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : -1;
}
