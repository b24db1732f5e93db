// The verbs of the kiln tool; each registers a CLI11 subcommand that sets `exit_code`.
#pragma once

namespace CLI {
class App;
}

namespace kiln::cli {

void register_info(CLI::App& app, int& exit_code);
void register_run(CLI::App& app, int& exit_code);
void register_bench(CLI::App& app, int& exit_code);
void register_conformance(CLI::App& app, int& exit_code);
void register_discover(CLI::App& app, int& exit_code);
void register_schedule(CLI::App& app, int& exit_code);
void register_cell(CLI::App& app, int& exit_code);
void register_quantize(CLI::App& app, int& exit_code);

}  // namespace kiln::cli
