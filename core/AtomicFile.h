#pragma once
#include <filesystem>
#include <functional>

namespace liverseg::core {

// Writes `target` all or nothing: `write` fills a temporary sibling file (same folder, same
// extension, so format-by-extension writers still work), which is then renamed over
// `target`. If `write` throws, the temporary is removed and `target` is untouched.
void writeAtomically(const std::filesystem::path& target,
                     const std::function<void(const std::filesystem::path& temporary)>& write);

// The full extension that decides a file's format: ".nii.gz", ".nrrd", ".pt", ...
std::string fullExtension(const std::filesystem::path& path);

}  // namespace liverseg::core
