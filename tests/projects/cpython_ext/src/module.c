#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject* triple(PyObject* self, PyObject* arg) {
  long value = PyLong_AsLong(arg);
  if (value == -1 && PyErr_Occurred()) return NULL;
  return PyLong_FromLong(3 * value);
}

static PyMethodDef methods[] = {{"triple", triple, METH_O, "3 * x"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cpython_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_cpython_ext(void) { return PyModule_Create(&module); }
