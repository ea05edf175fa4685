// A strict reader of Prometheus text exposition (format 0.0.4), for the format tests: it parses
// what bulwark::to_prometheus writes back into families and samples, and throws
// std::runtime_error naming the line for anything Prometheus would reject or bulwark must not
// write (a sample without a TYPE before it, a counter not ending in _total, a family split in two,
// a bad name, escape or number, a repeated series).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prometheus_test {

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped values, in order
  double value = 0;

  /// The value of label `name`, or "" when the sample has none.
  [[nodiscard]] std::string label(std::string_view name) const {
    for (const auto& [key, value] : labels) {
      if (key == name) return value;
    }
    return "";
  }
};

struct Exposition {
  std::map<std::string, std::string> types;  // metric name -> counter | gauge
  std::map<std::string, std::string> help;   // metric name -> unescaped HELP text
  std::vector<Sample> samples;               // in order

  /// The samples named `name`, in order.
  [[nodiscard]] std::vector<Sample> named(std::string_view name) const {
    std::vector<Sample> found;
    for (const auto& sample : samples) {
      if (sample.name == name) found.push_back(sample);
    }
    return found;
  }
  /// The value of the only sample named `name`; throws unless there is exactly one.
  [[nodiscard]] double value(std::string_view name) const {
    const auto found = named(name);
    if (found.size() != 1) {
      throw std::runtime_error("expected one sample named " + std::string{name} + ", found " +
                               std::to_string(found.size()));
    }
    return found.front().value;
  }
};

namespace detail {

inline bool is_name(std::string_view name, bool colons) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool first =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':');
    if (!first && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

[[noreturn]] inline void fail(std::size_t line_number, std::string_view line,
                              std::string_view why) {
  throw std::runtime_error("line " + std::to_string(line_number) + " (" + std::string{line} +
                           "): " + std::string{why});
}

// Reads up to the first unescaped `end` (or the end of the text when end is '\0'), undoing the
// escapes the format allows: \\ and \n, plus \" when quoted.
inline std::string unescape(std::string_view text, std::size_t& pos, char end, bool quoted,
                            std::size_t line_number, std::string_view line) {
  std::string out;
  while (pos < text.size() && text[pos] != end) {
    const char c = text[pos++];
    if (c == '"' && quoted) fail(line_number, line, "unescaped double quote in a label value");
    if (c != '\\') {
      out += c;
      continue;
    }
    if (pos == text.size()) fail(line_number, line, "backslash at the end");
    const char next = text[pos++];
    if (next == '\\') {
      out += '\\';
    } else if (next == 'n') {
      out += '\n';
    } else if (next == '"' && quoted) {
      out += '"';
    } else {
      fail(line_number, line, "invalid escape");
    }
  }
  if (end != '\0' && pos == text.size()) fail(line_number, line, "unterminated label value");
  return out;
}

inline double parse_value(std::string_view text, std::size_t line_number, std::string_view line) {
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  const std::string copy{text};
  if (copy.empty() || copy.find_first_not_of("0123456789+-.eE") != std::string::npos) {
    fail(line_number, line, "value is not a number");
  }
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || errno == ERANGE) {
    fail(line_number, line, "value is not a number");
  }
  return value;
}

}  // namespace detail

/// Parses `text`; throws std::runtime_error at the first thing wrong with it.
inline Exposition parse_exposition(std::string_view text) {
  Exposition result;
  if (text.empty()) throw std::runtime_error("empty exposition");
  if (text.back() != '\n') throw std::runtime_error("the last line does not end in a newline");
  std::set<std::string> finished;  // families whose samples are over: none may follow
  std::string current;             // family of the last sample
  std::set<std::string> series;    // name{labels}, to catch repeats
  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (line.empty()) detail::fail(line_number, line, "empty line");
    if (line.front() == '#') {
      const bool is_help = line.starts_with("# HELP ");
      const bool is_type = line.starts_with("# TYPE ");
      if (!is_help && !is_type) detail::fail(line_number, line, "comment is neither HELP nor TYPE");
      const std::string_view rest = line.substr(7);
      const std::size_t space = rest.find(' ');
      if (space == std::string_view::npos)
        detail::fail(line_number, line, "no text after the name");
      const std::string name{rest.substr(0, space)};
      if (!detail::is_name(name, true)) detail::fail(line_number, line, "invalid metric name");
      if (finished.contains(name) || current == name) {
        detail::fail(line_number, line, "HELP or TYPE after the metric's samples");
      }
      if (is_help) {
        if (result.help.contains(name)) detail::fail(line_number, line, "second HELP");
        std::size_t pos = space + 1;
        result.help[name] = detail::unescape(rest, pos, '\0', false, line_number, line);
      } else {
        if (result.types.contains(name)) detail::fail(line_number, line, "second TYPE");
        const std::string type{rest.substr(space + 1)};
        if (type != "counter" && type != "gauge") detail::fail(line_number, line, "unknown type");
        if (type == "counter" && !name.ends_with("_total")) {
          detail::fail(line_number, line, "counter name does not end in _total");
        }
        result.types[name] = type;
      }
      continue;
    }
    Sample sample;
    std::size_t pos = line.find_first_of("{ ");
    if (pos == std::string_view::npos) detail::fail(line_number, line, "no value");
    sample.name = std::string{line.substr(0, pos)};
    if (!detail::is_name(sample.name, true)) detail::fail(line_number, line, "invalid metric name");
    if (line[pos] == '{') {
      ++pos;
      while (pos < line.size() && line[pos] != '}') {
        const std::size_t equals = line.find('=', pos);
        if (equals == std::string_view::npos) detail::fail(line_number, line, "label without =");
        const std::string label{line.substr(pos, equals - pos)};
        if (!detail::is_name(label, false) || label.starts_with("__")) {
          detail::fail(line_number, line, "invalid label name");
        }
        for (const auto& [seen, value] : sample.labels) {
          if (seen == label) detail::fail(line_number, line, "repeated label");
        }
        pos = equals + 1;
        if (pos >= line.size() || line[pos] != '"') {
          detail::fail(line_number, line, "label value not quoted");
        }
        ++pos;
        std::string value = detail::unescape(line, pos, '"', true, line_number, line);
        ++pos;  // the closing quote
        sample.labels.emplace_back(label, std::move(value));
        if (pos < line.size() && line[pos] == ',') ++pos;
      }
      if (pos >= line.size()) detail::fail(line_number, line, "unterminated label set");
      ++pos;  // '}'
    }
    if (pos >= line.size() || line[pos] != ' ')
      detail::fail(line_number, line, "no space before the value");
    const std::string_view value_text = line.substr(pos + 1);
    if (value_text.find(' ') != std::string_view::npos) {
      detail::fail(line_number, line,
                   "unexpected text after the value (bulwark writes no timestamps)");
    }
    sample.value = detail::parse_value(value_text, line_number, line);
    const auto type = result.types.find(sample.name);
    if (type == result.types.end())
      detail::fail(line_number, line, "sample without a TYPE before it");
    if (!result.help.contains(sample.name))
      detail::fail(line_number, line, "sample without a HELP");
    if (type->second == "counter" && !(sample.value >= 0)) {
      detail::fail(line_number, line, "counter below zero");
    }
    if (sample.name != current) {
      if (finished.contains(sample.name)) detail::fail(line_number, line, "family split in two");
      if (!current.empty()) finished.insert(current);
      current = sample.name;
    }
    std::string key = sample.name;
    for (const auto& [label, value] : sample.labels) key += "\n" + label + "=" + value;
    if (!series.insert(key).second) detail::fail(line_number, line, "repeated series");
    result.samples.push_back(std::move(sample));
  }
  for (const auto& [name, type] : result.types) {
    if (result.named(name).empty()) throw std::runtime_error("TYPE without samples: " + name);
  }
  return result;
}

}  // namespace prometheus_test
