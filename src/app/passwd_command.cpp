// `petrel passwd [-c] [-I N] FILE USER` asks for the password twice on the
// terminal (echo off) and adds or updates USER; `-b FILE USER PASSWORD` takes
// it from the command line (batch mode, for scripts); `-D FILE USER` deletes
// USER; `-c` creates (or empties) FILE first. With `--scram` the file is a
// SCRAM-SHA-256 credentials file (auth/scram.hpp) and the same commands
// edit it. The file keeps its comments and
// order, is written to a temporary file beside it and renamed into place (a
// reader never sees half a file), and is created with mode 0600.
#include "app/passwd_command.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "auth/file_error.hpp"
#include "auth/password_file.hpp"
#include "auth/scram.hpp"

namespace petrel::app {
namespace {

struct PasswdArgs {
  bool create = false;
  bool batch = false;
  bool remove = false;
  bool scram = false;
  std::uint32_t iterations = 0;  // 0: the format's default
  std::string file;
  std::string user;
  std::string password;
};

// Reads a line from the terminal with echo off; from standard input when
// there is no terminal (a pipe).
std::optional<std::string> read_secret(const char* prompt) {
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  std::string line;
  if (fd < 0) {
    if (!std::getline(std::cin, line)) return std::nullopt;
    return line;
  }
  termios old{};
  const bool tty = ::tcgetattr(fd, &old) == 0;
  if (tty) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!::write(fd, prompt, std::strlen(prompt));
  char c;
  bool ok = false;
  while (::read(fd, &c, 1) == 1) {
    if (c == '\n' || c == '\r') {
      ok = true;
      break;
    }
    line.push_back(c);
  }
  if (tty) ::tcsetattr(fd, TCSAFLUSH, &old);
  (void)!::write(fd, "\n", 1);
  ::close(fd);
  if (!ok && line.empty()) return std::nullopt;
  return line;
}

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(path + ": cannot write " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error(tmp + ": write failed: " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  // An existing file keeps its mode (0600 for a new one).
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) (void)!::fchmod(fd, st.st_mode & 07777);
  ::fsync(fd);
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(path + ": cannot replace the file: " + std::strerror(errno));
}

int run(const PasswdArgs& a) {
  if (a.user.empty() || a.user.find(':') != std::string::npos) {
    std::fprintf(stderr, "petrel passwd: the user name must not be empty or contain ':'\n");
    return 2;
  }
  if (a.remove && (a.create || a.batch)) {
    std::fprintf(stderr, "petrel passwd: -D cannot be combined with -c or -b\n");
    return 2;
  }
  std::string text;
  if (!a.create) {
    try {
      text = auth::read_file(a.file);
      // Refuse to edit a file petrel could not read.
      if (a.scram) {
        auth::ScramFile::parse(text, a.file);
      } else {
        auth::PasswordFile::parse(text, a.file);
      }
    } catch (const auth::FileError& e) {
      std::fprintf(stderr, "petrel passwd: %s\n", e.what());
      return 1;
    }
  }
  std::optional<std::string> hash;
  if (!a.remove) {
    std::string password = a.password;
    if (!a.batch) {
      auto first = read_secret("Password: ");
      auto second = first ? read_secret("Reenter password: ") : std::nullopt;
      if (!first || !second) {
        std::fprintf(stderr, "petrel passwd: no password given\n");
        return 1;
      }
      if (*first != *second) {
        std::fprintf(stderr, "petrel passwd: the passwords do not match\n");
        return 1;
      }
      password = *first;
    }
    hash = a.scram ? auth::ScramFile::make_entry(password, a.iterations ? a.iterations
                                                                         : auth::ScramFile::kDefaultIterations)
                   : auth::PasswordFile::make_hash(password, a.iterations ? a.iterations
                                                                           : auth::PasswordFile::kDefaultIterations);
  }
  const bool existed = auth::set_password_line(text, a.user, hash);
  if (a.remove && !existed) {
    std::fprintf(stderr, "petrel passwd: user '%s' is not in %s\n", a.user.c_str(), a.file.c_str());
    return 1;
  }
  try {
    write_atomically(a.file, text);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petrel passwd: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

void add_passwd_command(CLI::App& cli, int& exit_code) {
  auto args = std::make_shared<PasswdArgs>();
  auto* cmd = cli.add_subcommand("passwd", "Create or edit a password file (Mosquitto's format, $7$ PBKDF2-SHA512)");
  cmd->add_flag("-c,--create", args->create, "Create FILE (an existing one is overwritten)");
  cmd->add_flag("-b,--batch", args->batch, "Take the password from the command line");
  cmd->add_flag("-D,--delete", args->remove, "Delete USER from FILE");
  cmd->add_flag("--scram", args->scram,
                "Edit a SCRAM-SHA-256 credentials file (scram_file) instead of a password file");
  cmd->add_option("-I,--iterations", args->iterations,
                  "PBKDF2 iterations (default 101 as mosquitto_passwd; with --scram 4096)")
      ->check(CLI::Range(1u, 100000000u));
  cmd->add_option("file", args->file, "The password file")->required();
  cmd->add_option("user", args->user, "The user name")->required();
  cmd->add_option("password", args->password, "The password (with -b)");
  cmd->callback([args, cmd, &exit_code] {
    if (args->batch != (cmd->count("password") > 0)) {
      std::fprintf(stderr, "petrel passwd: a PASSWORD argument goes with -b, and -b needs one\n");
      exit_code = 2;
      return;
    }
    exit_code = run(*args);
  });
}

}  // namespace petrel::app
