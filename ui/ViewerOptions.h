#pragma once
#include "render/WindowLevel.h"

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace liverseg::ui {

// Wrong use of the viewer's command line; the message says what is wrong (exit code 2).
class ViewerUsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct WindowSize {
    int width = 1200;
    int height = 800;
};

// liverseg [view] [CT] [--mask MASK] [--slice N] [--window W --level L | --preset NAME]
//          [--screenshot PNG] [--size WxH]
struct ViewerOptions {
    std::optional<std::filesystem::path> ct;
    std::optional<std::filesystem::path> mask;
    std::optional<int> slice;  // voxel index along the axial axis, from 0
    std::optional<render::WindowLevel> windowLevel;
    std::optional<std::filesystem::path> screenshot;
    WindowSize size;
    bool help = false;
};

// `arguments` are what follows the program name, with or without the leading "view".
ViewerOptions parseViewerOptions(const std::vector<std::string>& arguments);
std::string viewerUsage();

}  // namespace liverseg::ui
