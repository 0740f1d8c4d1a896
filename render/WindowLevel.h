#pragma once
#include <optional>
#include <string>
#include <vector>

namespace liverseg::render {

// A Hounsfield display window: HU in [level - window/2, level + window/2] map linearly from
// black to white; below is black, above is white.
struct WindowLevel {
    double window = 400;
    double level = 40;

    double lower() const { return level - window / 2; }
    double upper() const { return level + window / 2; }
    // The grey value in [0, 1] that `hu` is displayed with.
    double greyFraction(double hu) const;
    // After a right-drag of (dx, dy) screen pixels: dragging right widens the window,
    // dragging up raises the level. The step grows with the window so that narrow and wide
    // windows both feel responsive.
    WindowLevel draggedBy(double dxPixels, double dyPixels) const;

    bool operator==(const WindowLevel& other) const {
        return window == other.window && level == other.level;
    }
    bool operator!=(const WindowLevel& other) const { return !(*this == other); }
};

struct WindowLevelPreset {
    std::string name;   // lower-case, used on the command line: "abdomen", "liver", ...
    std::string label;  // for menus and toolbars: "Abdomen"
    WindowLevel value;
};

// abdomen W400/L40, liver W150/L60, bone W1800/L400, lung W1500/L-600.
const std::vector<WindowLevelPreset>& windowLevelPresets();
std::optional<WindowLevelPreset> findWindowLevelPreset(const std::string& name);
// "abdomen, liver, bone, lung"
std::string windowLevelPresetNames();

constexpr double kMinimumWindow = 1.0;

}  // namespace liverseg::render
