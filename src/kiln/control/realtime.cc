#include "kiln/control/realtime.h"

#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::control {

std::string lock_memory() {
  if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) return "";
  return std::string("mlockall refused (") + std::strerror(errno) +
         "): pages may be swapped or faulted in during a cycle; run as root or raise 'ulimit -l'";
}

std::string set_fifo_priority(pthread_t thread, int priority) {
  sched_param sp{};
  sp.sched_priority = priority;
  int rc = pthread_setschedparam(thread, SCHED_FIFO, &sp);
  if (rc == 0) return "";
  return std::string("SCHED_FIFO priority ") + std::to_string(priority) + " refused (" + std::strerror(rc) +
         "): running with normal priority; grant CAP_SYS_NICE or an rtprio limit (ulimit -r)";
}

std::string set_cpu(pthread_t thread, int cpu) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpu < 0) return "";
  if (cpu >= n) return "CPU " + std::to_string(cpu) + " does not exist (" + std::to_string(n) + " online): not pinned";
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  int rc = pthread_setaffinity_np(thread, sizeof set, &set);
  if (rc == 0) return "";
  return "pinning to CPU " + std::to_string(cpu) + " refused (" + std::strerror(rc) + ")";
}

std::string set_timer_slack_1ns() {
  if (prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0) == 0) return "";
  return std::string("timer slack could not be set to 1 ns (") + std::strerror(errno) + ")";
}

void prefault_stack(size_t bytes) {
  volatile char* p = static_cast<volatile char*>(__builtin_alloca(bytes));
  for (size_t i = 0; i < bytes; i += 4096) p[i] = 0;
}

bool has_realtime_kernel() {
  utsname u{};
  if (uname(&u) != 0) return false;
  return std::strstr(u.version, "PREEMPT_RT") != nullptr || std::strstr(u.version, "PREEMPT RT") != nullptr;
}

}  // namespace kiln::control
