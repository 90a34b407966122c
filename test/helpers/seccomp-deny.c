/*
 * seccomp-deny ERRNO UID COMMAND [ARG...]
 *
 * Runs COMMAND as a container's default profile would: a seccomp filter that
 * fails userfaultfd(2) with ERRNO (EPERM = 1, ENOSYS = 38) and allows every
 * other syscall (ERRNO 0: no filter), and (UID > 0) as that user, so that /dev/userfaultfd (root's,
 * mode 0600) cannot be opened either. Used by test/probe.test.ts.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp-deny: unsupported architecture"
#endif

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: seccomp-deny ERRNO UID COMMAND [ARG...]\n");
    return 2;
  }
  unsigned err = (unsigned)atoi(argv[1]);
  int uid = atoi(argv[2]);
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), filter};
  if (uid > 0 && (setgid(uid) != 0 || setuid(uid) != 0)) {
    perror("seccomp-deny: setuid");
    return 2;
  }
  if (err != 0 &&
      (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)) {
    perror("seccomp-deny: prctl");
    return 2;
  }
  execvp(argv[3], argv + 3);
  perror("seccomp-deny: exec");
  return 127;
}
