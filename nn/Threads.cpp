#include "nn/Threads.h"

#include <ATen/Parallel.h>

#include <sched.h>

#include <thread>

namespace liverseg::nn {

int availableCores() {
    // The affinity mask is what a container or `taskset` leaves us; hardware_concurrency
    // counts the whole machine.
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0) {
        const int count = CPU_COUNT(&mask);
        if (count > 0) return count;
    }
    const unsigned hardware = std::thread::hardware_concurrency();
    return hardware > 0 ? int(hardware) : 1;
}

int setIntraOpThreads(int count) {
    at::set_num_threads(count > 0 ? count : availableCores());
    return at::get_num_threads();
}

int intraOpThreads() { return at::get_num_threads(); }

}  // namespace liverseg::nn
