#include "ui/ViewerOptions.h"

#include <QString>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <regex>

namespace liverseg::ui {

namespace {

double parseFinite(const std::string& text, const std::string& option) {
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(value)) {
        throw ViewerUsageError(option + " expects a number, got '" + text + "'");
    }
    return value;
}

int parseInteger(const std::string& text, const std::string& option) {
    static const std::regex integer("-?[0-9]{1,9}");
    if (!std::regex_match(text, integer)) {
        throw ViewerUsageError(option + " expects a whole number, got '" + text + "'");
    }
    return std::stoi(text);
}

WindowSize parseSize(const std::string& text) {
    static const std::regex size("([0-9]{1,5})x([0-9]{1,5})");
    std::smatch match;
    if (!std::regex_match(text, match, size)) {
        throw ViewerUsageError("--size expects WIDTHxHEIGHT in pixels, e.g. 1200x800; got '" + text + "'");
    }
    const WindowSize parsed{std::stoi(match[1]), std::stoi(match[2])};
    if (parsed.width < 200 || parsed.height < 150 || parsed.width > 8192 || parsed.height > 8192) {
        throw ViewerUsageError("--size " + text + " is out of range (200x150 to 8192x8192)");
    }
    return parsed;
}

}  // namespace

std::string viewerUsage() {
    return "usage: liverseg [view] [CT] [--mask MASK] [--slice N] [--window W --level L | --preset NAME]\n"
           "                [--screenshot PNG] [--size WxH]\n\n"
           "Opens the viewer. CT is a NIfTI, NRRD or MetaImage file, or a DICOM folder or file.\n"
           "  --mask MASK        a label map on the CT's voxel grid, drawn in green\n"
           "  --slice N          axial slice to show, counted from 0 (default: the middle one)\n"
           "  --window W --level L   Hounsfield display window (default W 400, L 40)\n"
           "  --preset NAME      one of: " +
           render::windowLevelPresetNames() +
           "\n"
           "  --screenshot PNG   render once, save the window as PNG and exit (needs an X display;\n"
           "                     headless: xvfb-run -a liverseg ...)\n"
           "  --size WxH         window size in pixels (default 1200x800)\n";
}

ViewerOptions parseViewerOptions(const std::vector<std::string>& arguments) {
    ViewerOptions options;
    std::optional<double> window, level;
    std::optional<std::string> preset;
    std::vector<std::string> positionals;

    for (const auto& argument : arguments) {
        if (argument == "--help" || argument == "-h") {
            options.help = true;
            return options;
        }
    }
    std::size_t position = 0;
    if (!arguments.empty() && arguments.front() == "view") position = 1;
    for (; position < arguments.size(); ++position) {
        const std::string& argument = arguments[position];
        if (argument.rfind("--", 0) != 0 || argument == "--") {
            positionals.push_back(argument);
            continue;
        }
        std::string name = argument, value;
        bool hasValue = false;
        if (const auto equals = argument.find('='); equals != std::string::npos) {
            name = argument.substr(0, equals);
            value = argument.substr(equals + 1);
            hasValue = true;
        }
        const auto takeValue = [&]() {
            if (hasValue) return value;
            if (position + 1 >= arguments.size()) throw ViewerUsageError(name + " needs a value");
            return arguments[++position];
        };
        if (name == "--mask") {
            options.mask = takeValue();
        } else if (name == "--slice") {
            options.slice = parseInteger(takeValue(), name);
            if (*options.slice < 0) throw ViewerUsageError("--slice counts from 0; got " + std::to_string(*options.slice));
        } else if (name == "--window") {
            window = parseFinite(takeValue(), name);
            if (*window < render::kMinimumWindow) throw ViewerUsageError("--window must be at least 1 HU");
        } else if (name == "--level") {
            level = parseFinite(takeValue(), name);
        } else if (name == "--preset") {
            preset = takeValue();
        } else if (name == "--screenshot") {
            options.screenshot = takeValue();
        } else if (name == "--size") {
            options.size = parseSize(takeValue());
        } else {
            throw ViewerUsageError("unknown option '" + name + "'");
        }
    }

    if (positionals.size() > 1) throw ViewerUsageError("expected at most one CT, got '" + positionals[1] + "' too");
    if (!positionals.empty()) options.ct = positionals.front();
    if (options.mask && !options.ct) throw ViewerUsageError("--mask needs a CT to lie on");
    if (options.slice && !options.ct) throw ViewerUsageError("--slice needs a CT");
    if (window.has_value() != level.has_value()) throw ViewerUsageError("--window and --level go together");
    if (preset && window) throw ViewerUsageError("give either --preset or --window/--level, not both");
    if (preset) {
        const auto found = render::findWindowLevelPreset(*preset);
        if (!found) {
            throw ViewerUsageError("unknown --preset '" + *preset + "' (known: " + render::windowLevelPresetNames() + ")");
        }
        options.windowLevel = found->value;
    }
    if (window) options.windowLevel = render::WindowLevel{*window, *level};
    if (options.screenshot && QString::fromStdString(options.screenshot->extension().string()).toLower() != ".png") {
        throw ViewerUsageError("--screenshot writes PNG; give a file name ending in .png");
    }
    return options;
}

}  // namespace liverseg::ui
