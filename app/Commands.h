#pragma once
#include "app/CommandLine.h"

namespace liverseg::app {

// Every headless subcommand: prints its own --help, returns the process exit code, and
// reports bad input by throwing core::InputError or UsageError (exit code 2).
int runInfo(Arguments& arguments);
int runPhantom(Arguments& arguments);
int runModel(Arguments& arguments);
int runPredict(Arguments& arguments);
int runEvaluate(Arguments& arguments);
int runTrain(Arguments& arguments);
int runFinetune(Arguments& arguments);

}  // namespace liverseg::app
