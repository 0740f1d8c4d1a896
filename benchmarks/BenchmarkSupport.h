#pragma once
// Small helpers shared by the benchmark programs.
#include <algorithm>
#include <vector>

namespace liverseg::benchmark {

inline double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace liverseg::benchmark
