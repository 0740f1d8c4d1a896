#include "core/AtomicFile.h"

#include "core/Errors.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <fcntl.h>
#include <string>

namespace liverseg::core {

std::string fullExtension(const std::filesystem::path& path) {
    std::string name = path.filename().string();
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    const std::string gzipped = ".nii.gz";
    if (name.size() > gzipped.size() && name.compare(name.size() - gzipped.size(), gzipped.size(), gzipped) == 0) {
        return gzipped;
    }
    const auto dot = name.rfind('.');
    return dot == std::string::npos || dot == 0 ? std::string() : name.substr(dot);
}

namespace {

std::filesystem::path temporarySibling(const std::filesystem::path& target) {
    static std::atomic<unsigned> counter{0};
    const std::string extension = fullExtension(target);
    std::string stem = target.filename().string();
    stem.resize(stem.size() - extension.size());
    const std::string name = "." + stem + ".tmp" + std::to_string(::getpid()) + "-" +
                             std::to_string(counter++) + extension;
    return target.parent_path() / name;
}

// Make the data durable before the rename makes it visible.
void flushToDisk(const std::filesystem::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

}  // namespace

void writeAtomically(const std::filesystem::path& target,
                     const std::function<void(const std::filesystem::path& temporary)>& write) {
    const std::filesystem::path folder =
        target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
    if (!std::filesystem::is_directory(folder)) {
        throw InputError(target.string() + ": folder " + folder.string() + " does not exist");
    }
    const std::filesystem::path temporary = temporarySibling(target);
    try {
        write(temporary);
        flushToDisk(temporary);
        std::filesystem::rename(temporary, target);
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        throw;
    }
}

}  // namespace liverseg::core
