// Help that reads like the commands people type: a command group whose default
// subcommand takes options (`b365 server --repo DIR`, `b365 verify --all`) lists those
// options in its own help, not only in the help of a subcommand nobody types.
import type { Command } from 'commander';

/** Make `b365 GROUP --help` show the usage and options of GROUP's default subcommand. */
export function helpShowsDefault(group: Command, defaultCommand: Command, usage: string): void {
  group.usage(`${usage}\n       ${group.parent?.name() ?? 'b365'} ${group.name()} <command> [options]`);
  defaultCommand.usage(usage);
  group.addHelpText('after', () => {
    const help = defaultCommand.createHelp();
    const options = help.visibleOptions(defaultCommand).filter((option) => option.long !== '--help');
    const width = Math.max(...options.map((option) => help.optionTerm(option).length));
    const lines = options.map(
      (option) => `  ${help.optionTerm(option).padEnd(width)}  ${help.optionDescription(option)}`,
    );
    return `\nOptions of ${group.name()} ${defaultCommand.name()} (the default command):\n${lines.join('\n')}`;
  });
}
