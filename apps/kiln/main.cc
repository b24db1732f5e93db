// kiln — one command-line tool for every part of Kiln.
//
//   kiln info MODEL [--json]                         what a model is and what it costs
//   kiln run MODEL --input NAME=FILE.npy ... --output-dir DIR
//   kiln bench MODEL [--threads N] [--runs R] [--json]
//   kiln conformance DIR... [--report md|json] [--gate]
//   kiln quantize MODEL --calibration DIR --output OUT.onnx [--per-channel] [--method M]
//
// Exit codes: 0 success, 1 a requested check failed, 2 bad input (message on stderr).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli_common.h"
#include "verbs.h"

int main(int argc, char** argv) {
  CLI::App app{"Kiln: on-device AI, real-time control, orchestration and discovery"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kiln 0.1.0");
  int exit_code = 0;
  kiln::cli::register_info(app, exit_code);
  kiln::cli::register_run(app, exit_code);
  kiln::cli::register_bench(app, exit_code);
  kiln::cli::register_conformance(app, exit_code);
  kiln::cli::register_discover(app, exit_code);
  kiln::cli::register_schedule(app, exit_code);
  kiln::cli::register_cell(app, exit_code);
  kiln::cli::register_quantize(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "kiln: %s\nRun 'kiln --help' for usage.\n", e.what());
    return kiln::cli::kExitBadInput;
  }
  return exit_code;
}
