/* A stand-in for the CUDA driver, for tests on machines without a GPU: the five calls
 * the generated loader makes, answering with the compute capability in $STUB_CUDA_CC
 * ("8.6") for $STUB_CUDA_COUNT devices (default 1). */
#include <stdio.h>
#include <stdlib.h>

static int count(void) {
  const char* text = getenv("STUB_CUDA_COUNT");
  return text ? atoi(text) : 1;
}

int cuInit(unsigned int flags) { (void)flags; return 0; }

int cuDeviceGetCount(int* n) {
  *n = count();
  return 0;
}

int cuDeviceGet(int* device, int ordinal) {
  if (ordinal < 0 || ordinal >= count()) return 101; /* CUDA_ERROR_INVALID_DEVICE */
  *device = ordinal;
  return 0;
}

int cuDeviceGetAttribute(int* value, int attribute, int device) {
  (void)device;
  int major = 0, minor = 0;
  const char* text = getenv("STUB_CUDA_CC");
  if (text == NULL || sscanf(text, "%d.%d", &major, &minor) != 2) return 1;
  if (attribute == 75) *value = major;
  else if (attribute == 76) *value = minor;
  else return 1;
  return 0;
}

int cuDeviceGetName(char* name, int length, int device) {
  snprintf(name, (size_t)length, "Stub GPU %d", device);
  return 0;
}
