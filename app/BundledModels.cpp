#include "app/BundledModels.h"

#include "app/CommandLine.h"
#include "core/Errors.h"

#include <cstdlib>
#include <system_error>

namespace liverseg::app {

namespace fs = std::filesystem;

std::vector<std::string> bundledModelNames(const std::string& choice, const std::string& option) {
    if (choice == "unet" || choice == "unet3plus") return {choice};
    if (choice == "both") return {"unet", "unet3plus"};
    throw UsageError(option + " must be unet, unet3plus or both");
}

namespace {

std::vector<fs::path> modelFolders() {
    std::vector<fs::path> folders;
    if (const char* overridden = std::getenv("LIVERSEG_MODELS"); overridden && *overridden) folders.emplace_back(overridden);
    std::error_code error;
    const fs::path executable = fs::read_symlink("/proc/self/exe", error);
    if (!error) folders.push_back(executable.parent_path().parent_path() / "share" / "liverseg" / "models");
    folders.push_back(fs::path(LIVERSEG_ASSETS_DIR) / "models");
    return folders;
}

}  // namespace

fs::path bundledModel(const std::string& name) {
    std::string searched;
    for (const fs::path& folder : modelFolders()) {
        const fs::path candidate = folder / (name + ".pt");
        if (fs::is_regular_file(candidate)) return candidate;
        searched += (searched.empty() ? "" : ", ") + folder.string();
    }
    throw core::InputError("the default " + name + " weights (" + name + ".pt) are in none of " + searched +
                           "; give a checkpoint with --weights or set LIVERSEG_MODELS");
}

}  // namespace liverseg::app
