#pragma once
// The default weights shipped with liverseg (assets/models/unet.pt and unet3plus.pt, see
// assets/models/MODEL_CARD.md), used when no checkpoint is named.
#include <filesystem>
#include <string>
#include <vector>

namespace liverseg::app {

// "unet" -> {"unet"}, "unet3plus" -> {"unet3plus"}, "both" -> both; anything else is a
// UsageError naming `option`.
std::vector<std::string> bundledModelNames(const std::string& choice, const std::string& option);

// The bundled checkpoint `name` ("unet" or "unet3plus"), looked up in $LIVERSEG_MODELS, then
// in ../share/liverseg/models next to the executable, then in the source tree's
// assets/models. core::InputError saying where it looked when it is in none of them.
std::filesystem::path bundledModel(const std::string& name);

}  // namespace liverseg::app
