#include "app/Commands.h"
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "core/Phantom.h"

#include <filesystem>
#include <iostream>

namespace liverseg::app {
namespace {

const char* kHelp = R"(usage: liverseg phantom --out DIR [--seed N] [--size X,Y,Z] [--spacing X,Y,Z]

Writes a synthetic abdominal CT (DIR/ct.nii.gz, int16 HU) and its liver mask
(DIR/liver.nii.gz) on the same grid. Air, fat, muscle, a liver with noise and vessels,
kidneys, spleen and spine have realistic Hounsfield values; the liver's shape varies with
the seed. The same seed and size always give the same images.
Defaults: --seed 1 --size 256,256,96 --spacing 1.5,1.5,2.5 (mm).
)";

}  // namespace

int runPhantom(Arguments& arguments) {
    if (arguments.wantsHelp()) {
        std::cout << kHelp;
        return 0;
    }
    core::PhantomOptions options;
    const std::filesystem::path out = arguments.required("--out");
    options.seed = std::uint64_t(arguments.integer("--seed", 1, 0, 2147483647));
    if (const auto size = arguments.numberList("--size", 3)) {
        for (int d = 0; d < 3; ++d) {
            const double n = (*size)[d];
            if (n != std::floor(n) || n < 16 || n > 2048) {
                throw UsageError("phantom: --size values must be whole numbers from 16 to 2048");
            }
            options.size[d] = std::size_t(n);
        }
    }
    if (const auto spacing = arguments.numberList("--spacing", 3)) {
        for (int d = 0; d < 3; ++d) {
            if ((*spacing)[d] <= 0.05 || (*spacing)[d] > 20) {
                throw UsageError("phantom: --spacing values must be between 0.05 and 20 mm");
            }
            options.spacing[d] = (*spacing)[d];
        }
    }
    arguments.positionals(0, 0);
    std::error_code error;
    std::filesystem::create_directories(out, error);
    if (error || !std::filesystem::is_directory(out)) {
        throw core::InputError(out.string() + ": cannot create output folder");
    }
    const core::PhantomCase phantom = core::makeAbdominalPhantom(options);
    core::writeCtVolume(phantom.ct, out / "ct.nii.gz");
    core::writeLabelMap(phantom.liver, out / "liver.nii.gz");
    std::cout << "wrote " << (out / "ct.nii.gz").string() << " and " << (out / "liver.nii.gz").string() << " ("
              << core::describe(phantom.ct.geometry()) << ", liver " << core::countNonZero(phantom.liver)
              << " voxels)\n";
    return 0;
}

}  // namespace liverseg::app
