// liverseg: the composition root. With no arguments, or `view [FILE]`, it opens the viewer;
// with a subcommand it runs headless.
#include "app/Commands.h"
#include "core/Errors.h"

#ifdef LIVERSEG_WITH_GUI
#include "ui/Viewer.h"
#endif

#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace {

using liverseg::app::Arguments;

struct Subcommand {
    const char* name;
    const char* summary;
    int (*run)(Arguments&);
};

const Subcommand kSubcommands[] = {
    {"info", "describe a CT or label image: size, spacing, origin, direction, HU range", liverseg::app::runInfo},
    {"phantom", "write a synthetic abdominal CT phantom and its liver mask", liverseg::app::runPhantom},
    {"model", "describe, create, import, export and run network checkpoints", liverseg::app::runModel},
    {"predict", "segment the liver in a CT with UNet and/or UNet3+", liverseg::app::runPredict},
    {"evaluate", "score predicted masks against references (Dice, surface distances in mm)", liverseg::app::runEvaluate},
    {"train", "train UNet or UNet3+ on a dataset folder (LiTS, MSD/nnU-Net, NIfTI pairs, 2D)", liverseg::app::runTrain},
    {"finetune", "continue training a checkpoint on corrected cases (edited slices + replay)", liverseg::app::runFinetune},
};

void printUsage(std::ostream& out) {
    out << "usage: liverseg [view] [CT] [--mask MASK] [--slice N] [--preset NAME] [--screenshot PNG]\n"
           "       (liverseg view --help for every viewer option)\n"
           "       liverseg COMMAND [OPTIONS]   (liverseg COMMAND --help for details)\n\n"
           "commands:\n"
           "  view        open the viewer (the default with no command)\n";
    for (const auto& subcommand : kSubcommands) {
        out << "  " << subcommand.name << std::string(12 - std::strlen(subcommand.name), ' ') << subcommand.summary
            << "\n";
    }
    out << "\nexit codes: 0 success, 2 bad input or usage, 1 internal error\n";
}

int runHeadless(const Subcommand& subcommand, std::vector<std::string> rest) {
    Arguments arguments(subcommand.name, std::move(rest));
    try {
        return subcommand.run(arguments);
    } catch (const liverseg::app::UsageError& error) {
        std::cerr << "liverseg " << error.what() << "\n";
        return 2;
    } catch (const liverseg::core::InputError& error) {
        std::cerr << "liverseg " << subcommand.name << ": " << error.what() << "\n";
        return 2;
    } catch (const liverseg::core::Cancelled&) {
        std::cerr << "liverseg " << subcommand.name << ": cancelled; nothing was written\n";
        return 130;
    } catch (const std::bad_alloc&) {
        std::cerr << "liverseg " << subcommand.name << ": out of memory\n";
        return 2;
    } catch (const std::exception& error) {
        std::cerr << "liverseg " << subcommand.name << ": internal error: " << error.what() << "\n";
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    const std::string first = argc > 1 ? argv[1] : "view";
    if (first == "--help" || first == "-h" || first == "help") {
        printUsage(std::cout);
        return 0;
    }
    if (first == "--version") {
        std::cout << "liverseg " << LIVERSEG_VERSION << "\n";
        return 0;
    }
    if (first == "view" || first.rfind("--", 0) == 0) {
#ifdef LIVERSEG_WITH_GUI
        return liverseg::ui::runViewer(argc, argv);
#else
        std::cerr << "liverseg: this build has no viewer (configured with LIVERSEG_BUILD_GUI=OFF)\n";
        return 2;
#endif
    }
    for (const auto& subcommand : kSubcommands) {
        if (first == subcommand.name) return runHeadless(subcommand, std::vector<std::string>(argv + 2, argv + argc));
    }
#ifdef LIVERSEG_WITH_GUI
    // `liverseg CT.nii.gz [...]`: a file or folder where a command would be opens the viewer.
    if (std::filesystem::exists(first)) return liverseg::ui::runViewer(argc, argv);
#endif
    std::cerr << "liverseg: unknown command '" << first << "'\n\n";
    printUsage(std::cerr);
    return 2;
}
