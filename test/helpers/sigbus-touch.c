/*
 * A Node addon (N-API, no headers needed) whose registration touches a file mapping past
 * the end of its truncated file: a real bus error (SIGBUS, BUS_ADRERR) in the thread that
 * loads it, at an address no tmem region holds. test/inline-faults.test.ts checks that a
 * process with inline regions still dies of it, as it would without tmem.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

typedef struct napi_env__* napi_env;
typedef struct napi_value__* napi_value;

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  (void)env;
  int fd = memfd_create("tmem-sigbus-touch", 0); /* a file with no name on disk */
  if (fd < 0) return exports;
  if (ftruncate(fd, 8192) != 0) return exports;
  volatile char* p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return exports;
  if (ftruncate(fd, 0) != 0) return exports;
  p[4096] = 1; /* past the end of the file now: SIGBUS */
  return exports;
}
