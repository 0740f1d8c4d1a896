#include "app/CommandLine.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace liverseg::app {

Arguments::Arguments(std::string command, std::vector<std::string> arguments)
    : command_(std::move(command)), arguments_(std::move(arguments)), used_(arguments_.size(), false) {}

bool Arguments::wantsHelp() const {
    for (const auto& argument : arguments_) {
        if (argument == "--help" || argument == "-h") return true;
    }
    return false;
}

std::optional<std::string> Arguments::value(const std::string& name) {
    const std::string prefix = name + "=";
    for (std::size_t i = 0; i < arguments_.size(); ++i) {
        if (used_[i]) continue;
        if (arguments_[i] == name) {
            if (i + 1 >= arguments_.size() || used_[i + 1]) {
                throw UsageError(command_ + ": " + name + " needs a value");
            }
            used_[i] = used_[i + 1] = true;
            return arguments_[i + 1];
        }
        if (arguments_[i].rfind(prefix, 0) == 0) {
            used_[i] = true;
            return arguments_[i].substr(prefix.size());
        }
    }
    return std::nullopt;
}

std::string Arguments::required(const std::string& name) {
    auto text = value(name);
    if (!text) throw UsageError(command_ + ": " + name + " is required (see liverseg " + command_ + " --help)");
    return *text;
}

bool Arguments::flag(const std::string& name) {
    for (std::size_t i = 0; i < arguments_.size(); ++i) {
        if (!used_[i] && arguments_[i] == name) {
            used_[i] = true;
            return true;
        }
    }
    return false;
}

double parseNumber(const std::string& text, const std::string& what) {
    char* end = nullptr;
    const double number = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(number)) {
        throw UsageError(what + ": '" + text + "' is not a number");
    }
    return number;
}

int Arguments::integer(const std::string& name, int fallback, int minimum, int maximum) {
    const auto text = value(name);
    if (!text) return fallback;
    const double number = parseNumber(*text, command_ + " " + name);
    if (number != std::floor(number) || number < minimum || number > maximum) {
        std::ostringstream out;
        out << command_ << ": " << name << " must be a whole number from " << minimum << " to " << maximum;
        throw UsageError(out.str());
    }
    return int(number);
}

double Arguments::number(const std::string& name, double fallback) {
    const auto text = value(name);
    return text ? parseNumber(*text, command_ + " " + name) : fallback;
}

std::optional<std::vector<double>> Arguments::numberList(const std::string& name, std::size_t count) {
    const auto text = value(name);
    if (!text) return std::nullopt;
    std::vector<double> numbers;
    std::stringstream stream(*text);
    std::string item;
    while (std::getline(stream, item, ',')) numbers.push_back(parseNumber(item, command_ + " " + name));
    if (numbers.size() != count) {
        throw UsageError(command_ + ": " + name + " needs " + std::to_string(count) + " comma-separated numbers");
    }
    return numbers;
}

std::vector<std::string> Arguments::positionals(std::size_t minimum, std::size_t maximum) {
    std::vector<std::string> found;
    for (std::size_t i = 0; i < arguments_.size(); ++i) {
        if (used_[i]) continue;
        if (arguments_[i].size() > 1 && arguments_[i][0] == '-') {
            throw UsageError(command_ + ": unknown option " + arguments_[i] + " (see liverseg " + command_ + " --help)");
        }
        used_[i] = true;
        found.push_back(arguments_[i]);
    }
    if (found.size() < minimum || found.size() > maximum) {
        throw UsageError(command_ + ": expected " +
                         (minimum == maximum ? std::to_string(minimum)
                                             : std::to_string(minimum) + " to " + std::to_string(maximum)) +
                         " argument(s), got " + std::to_string(found.size()) + " (see liverseg " + command_ +
                         " --help)");
    }
    return found;
}

void Arguments::requireAllUsed() const {
    for (std::size_t i = 0; i < arguments_.size(); ++i) {
        if (!used_[i]) {
            throw UsageError(command_ + ": unexpected argument " + arguments_[i] + " (see liverseg " + command_ +
                             " --help)");
        }
    }
}

std::vector<std::string> Arguments::takeRemaining() {
    std::vector<std::string> remaining;
    for (std::size_t i = 0; i < arguments_.size(); ++i) {
        if (!used_[i]) remaining.push_back(arguments_[i]);
        used_[i] = true;
    }
    return remaining;
}

}  // namespace liverseg::app
