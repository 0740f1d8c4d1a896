#include "render/WindowLevel.h"

#include <algorithm>

namespace liverseg::render {

double WindowLevel::greyFraction(double hu) const {
    return std::clamp((hu - lower()) / window, 0.0, 1.0);
}

WindowLevel WindowLevel::draggedBy(double dxPixels, double dyPixels) const {
    const double huPerPixel = std::max(0.5, window / 256.0);
    WindowLevel dragged;
    dragged.window = std::max(kMinimumWindow, window + dxPixels * huPerPixel);
    dragged.level = level - dyPixels * huPerPixel;  // screen y grows downward
    return dragged;
}

const std::vector<WindowLevelPreset>& windowLevelPresets() {
    static const std::vector<WindowLevelPreset> presets = {
        {"abdomen", "Abdomen", {400, 40}},
        {"liver", "Liver", {150, 60}},
        {"bone", "Bone", {1800, 400}},
        {"lung", "Lung", {1500, -600}},
    };
    return presets;
}

std::optional<WindowLevelPreset> findWindowLevelPreset(const std::string& name) {
    for (const auto& preset : windowLevelPresets()) {
        if (preset.name == name) return preset;
    }
    return std::nullopt;
}

std::string windowLevelPresetNames() {
    std::string names;
    for (const auto& preset : windowLevelPresets()) {
        if (!names.empty()) names += ", ";
        names += preset.name;
    }
    return names;
}

}  // namespace liverseg::render
