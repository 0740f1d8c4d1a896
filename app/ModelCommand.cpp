#include "app/Commands.h"
#include "core/Errors.h"

namespace liverseg::app {

int runModel(Arguments& arguments) {
    throw core::InputError("the model command is not built yet");
}

}  // namespace liverseg::app
