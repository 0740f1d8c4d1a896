#pragma once
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace liverseg::app {

// Wrong use of the command line: the message says what is wrong; exit code 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The arguments of one subcommand. Options are taken as they are read; whatever is left
// at the end is an error, so a misspelt option never passes silently.
class Arguments {
public:
    Arguments(std::string command, std::vector<std::string> arguments);

    const std::string& command() const { return command_; }
    bool wantsHelp() const;

    // `--name VALUE` or `--name=VALUE`; nullopt when absent.
    std::optional<std::string> value(const std::string& name);
    std::string required(const std::string& name);
    bool flag(const std::string& name);
    int integer(const std::string& name, int fallback, int minimum, int maximum);
    double number(const std::string& name, double fallback);
    // "X,Y,Z" lists of `count` numbers.
    std::optional<std::vector<double>> numberList(const std::string& name, std::size_t count);

    // Positional arguments; call after taking every option.
    std::vector<std::string> positionals(std::size_t minimum, std::size_t maximum);
    void requireAllUsed() const;
    // Takes every argument not used yet, in order (for a command with sub-commands).
    std::vector<std::string> takeRemaining();

private:
    std::string command_;
    std::vector<std::string> arguments_;
    std::vector<bool> used_;
};

double parseNumber(const std::string& text, const std::string& what);

}  // namespace liverseg::app
