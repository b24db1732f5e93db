// kiln/control/realtime.h — asking Linux for real-time behaviour, and saying plainly when it
// refuses (ros2_control's realtime_helpers, returning messages instead of failing).
//
// Each call returns "" on success or a one-line warning that names what was refused and why;
// the runtime prints the warnings and runs anyway, as a normal-priority process.
//
//   std::string w = kiln::control::set_fifo_priority(pthread_self(), 80);
//   if (!w.empty()) std::fprintf(stderr, "warning: %s\n", w.c_str());
#pragma once

#include <pthread.h>

#include <string>

namespace kiln::control {

std::string lock_memory();                                 // mlockall(MCL_CURRENT | MCL_FUTURE)
std::string set_fifo_priority(pthread_t thread, int priority);  // SCHED_FIFO, 1..99
std::string set_cpu(pthread_t thread, int cpu);                 // pin to one CPU
std::string set_timer_slack_1ns();                              // calling thread: prctl(PR_SET_TIMERSLACK)
// Touches `bytes` of the calling thread's stack so that page faults happen now, not in a cycle.
void prefault_stack(size_t bytes = 256 * 1024);
// True when the kernel is PREEMPT_RT (from uname).
bool has_realtime_kernel();

}  // namespace kiln::control
