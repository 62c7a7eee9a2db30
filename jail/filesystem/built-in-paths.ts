// srt-gw's built-in filesystem defaults: the credential paths hidden in every jail, the startup files
// kept read-only in the home, and the names protected in every writable root and git directory.
// jail/filesystem-rules.ts turns them into rules; these lists are the only place the names live.

export interface BuiltInPath {
  /** "~/..." or a name inside a writable root. */
  readonly path: string;
  readonly kind: 'directory' | 'file';
  readonly what: string;
  /**
   * On Linux protected only when it exists at start: a missing one gets no stand-in mount point
   * (see where it is set for why); macOS needs none and protects it either way.
   */
  readonly ifPresent?: true;
}

/**
 * Hidden unless allowRead reopens them: where developer machines keep credentials, session
 * cookies and typed secrets. The brief's list, plus other common credential stores and the shell
 * and REPL histories, which routinely hold pasted tokens.
 */
export const DEFAULT_HIDDEN_PATHS: readonly BuiltInPath[] = Object.freeze([
  { path: '~/.ssh', kind: 'directory', what: 'SSH keys' },
  { path: '~/.aws', kind: 'directory', what: 'AWS credentials' },
  { path: '~/.gnupg', kind: 'directory', what: 'GnuPG private keys' },
  { path: '~/.kube', kind: 'directory', what: 'Kubernetes credentials' },
  { path: '~/.docker/config.json', kind: 'file', what: 'Docker registry credentials' },
  { path: '~/.netrc', kind: 'file', what: 'netrc passwords' },
  { path: '~/.config/gcloud', kind: 'directory', what: 'Google Cloud credentials' },
  { path: '~/.azure', kind: 'directory', what: 'Azure CLI credentials' },
  { path: '~/.config/gh', kind: 'directory', what: 'the GitHub CLI token' },
  { path: '~/.config/hub', kind: 'file', what: 'the hub GitHub token' },
  { path: '~/.git-credentials', kind: 'file', what: 'git stored credentials' },
  { path: '~/.npmrc', kind: 'file', what: 'npm registry tokens' },
  { path: '~/.pypirc', kind: 'file', what: 'PyPI tokens' },
  { path: '~/.gem/credentials', kind: 'file', what: 'the RubyGems API key' },
  { path: '~/.cargo/credentials', kind: 'file', what: 'the crates.io token' },
  { path: '~/.cargo/credentials.toml', kind: 'file', what: 'the crates.io token' },
  { path: '~/.terraform.d/credentials.tfrc.json', kind: 'file', what: 'Terraform Cloud tokens' },
  { path: '~/.vault-token', kind: 'file', what: 'the HashiCorp Vault token' },
  { path: '~/.config/doctl', kind: 'directory', what: 'the DigitalOcean token' },
  { path: '~/.oci', kind: 'directory', what: 'Oracle Cloud keys' },
  { path: '~/.config/rclone', kind: 'directory', what: 'rclone remotes and their credentials' },
  { path: '~/.s3cfg', kind: 'file', what: 's3cmd keys' },
  { path: '~/.pgpass', kind: 'file', what: 'PostgreSQL passwords' },
  { path: '~/.my.cnf', kind: 'file', what: 'MySQL passwords' },
  { path: '~/.config/op', kind: 'directory', what: '1Password CLI sessions' },
  { path: '~/.password-store', kind: 'directory', what: 'pass passwords' },
  { path: '~/.local/share/keyrings', kind: 'directory', what: 'GNOME keyrings' },
  { path: '~/.pki', kind: 'directory', what: 'the NSS certificate and key database' },
  { path: '~/.mozilla', kind: 'directory', what: 'Firefox profiles (cookies, saved passwords)' },
  { path: '~/.thunderbird', kind: 'directory', what: 'Thunderbird profiles (mail, saved passwords)' },
  { path: '~/.config/google-chrome', kind: 'directory', what: 'Chrome profiles (cookies, saved passwords)' },
  { path: '~/.config/chromium', kind: 'directory', what: 'Chromium profiles (cookies, saved passwords)' },
  { path: '~/.config/BraveSoftware', kind: 'directory', what: 'Brave profiles (cookies, saved passwords)' },
  { path: '~/.config/microsoft-edge', kind: 'directory', what: 'Edge profiles (cookies, saved passwords)' },
  { path: '~/.bash_history', kind: 'file', what: 'shell history, which often holds pasted secrets' },
  { path: '~/.zsh_history', kind: 'file', what: 'shell history, which often holds pasted secrets' },
  { path: '~/.local/share/fish/fish_history', kind: 'file', what: 'shell history, which often holds pasted secrets' },
  { path: '~/.python_history', kind: 'file', what: 'REPL history, which often holds pasted secrets' },
  { path: '~/.node_repl_history', kind: 'file', what: 'REPL history, which often holds pasted secrets' },
  { path: '~/.psql_history', kind: 'file', what: 'psql history, which often holds pasted secrets' },
  { path: '~/.mysql_history', kind: 'file', what: 'mysql history, which often holds pasted secrets' },
]);

/**
 * Hidden on macOS only, on top of DEFAULT_HIDDEN_PATHS: where macOS and its applications keep
 * secrets and private data under ~/Library. Not on Linux, where nothing lives there and bubblewrap
 * would create an empty mount point for each missing path.
 */
export const MACOS_DEFAULT_HIDDEN_PATHS: readonly BuiltInPath[] = Object.freeze([
  { path: '~/Library/Keychains', kind: 'directory', what: 'macOS keychains (passwords, keys, certificates)' },
  { path: '~/Library/Cookies', kind: 'directory', what: 'HTTP cookies of macOS applications (session tokens)' },
  { path: '~/Library/Safari', kind: 'directory', what: 'Safari history, bookmarks and browsing data' },
  { path: '~/Library/Containers/com.apple.Safari', kind: 'directory', what: 'Safari data (cookies, local storage)' },
  { path: '~/Library/Application Support/Google/Chrome', kind: 'directory', what: 'Chrome profiles (cookies, saved passwords)' },
  { path: '~/Library/Application Support/Chromium', kind: 'directory', what: 'Chromium profiles (cookies, saved passwords)' },
  { path: '~/Library/Application Support/BraveSoftware', kind: 'directory', what: 'Brave profiles (cookies, saved passwords)' },
  { path: '~/Library/Application Support/Microsoft Edge', kind: 'directory', what: 'Edge profiles (cookies, saved passwords)' },
  { path: '~/Library/Application Support/Arc', kind: 'directory', what: 'Arc profiles (cookies, saved passwords)' },
  { path: '~/Library/Application Support/Firefox', kind: 'directory', what: 'Firefox profiles (cookies, saved passwords)' },
  { path: '~/Library/Thunderbird', kind: 'directory', what: 'Thunderbird profiles (mail, saved passwords)' },
  { path: '~/Library/Application Support/1Password', kind: 'directory', what: '1Password vaults and settings' },
  // 2BUA8C4S2C is 1Password's Apple team identifier: the same on every Mac. The SSH agent socket is in here too.
  { path: '~/Library/Group Containers/2BUA8C4S2C.com.1password', kind: 'directory', what: '1Password vaults, settings and its SSH agent socket' },
  { path: '~/Library/Mail', kind: 'directory', what: 'Apple Mail messages and accounts' },
  { path: '~/Library/Messages', kind: 'directory', what: 'iMessage and SMS history and attachments' },
  { path: '~/Library/Group Containers/group.com.apple.notes', kind: 'directory', what: 'Apple Notes' },
  { path: '~/Library/Application Support/AddressBook', kind: 'directory', what: 'Contacts' },
  { path: '~/Library/Calendars', kind: 'directory', what: 'Calendar events' },
]);

/** The built-in hidden paths of a platform's jail. */
export function defaultHiddenPaths(platform: NodeJS.Platform): readonly BuiltInPath[] {
  return platform === 'darwin' ? [...DEFAULT_HIDDEN_PATHS, ...MACOS_DEFAULT_HIDDEN_PATHS] : DEFAULT_HIDDEN_PATHS;
}

/**
 * Read-only even under a writable path: files that run code in your next shell, login, editor,
 * desktop session or git command, or that start programs for agents and editors.
 */
export const DEFAULT_READ_ONLY_PATHS: readonly BuiltInPath[] = Object.freeze([
  ...['~/.bashrc', '~/.bash_profile', '~/.bash_login', '~/.bash_logout', '~/.profile'].map((path) => ({
    path,
    kind: 'file' as const,
    what: 'a shell startup file runs in your next shell',
  })),
  ...['~/.zshrc', '~/.zprofile', '~/.zshenv', '~/.zlogin', '~/.zlogout'].map((path) => ({
    path,
    kind: 'file' as const,
    what: 'a shell startup file runs in your next shell',
  })),
  { path: '~/.config/fish', kind: 'directory', what: 'fish startup files run in your next shell' },
  { path: '~/.gitconfig', kind: 'file', what: 'git configuration can name programs git runs (core.fsmonitor, hooks)' },
  { path: '~/.config/git', kind: 'directory', what: 'git configuration can name programs git runs (core.fsmonitor, hooks)' },
  { path: '~/.claude.json', kind: 'file', what: 'Claude Code settings name the MCP servers it starts' },
  { path: '~/.vimrc', kind: 'file', what: 'vim runs its startup file' },
  { path: '~/.config/nvim', kind: 'directory', what: 'Neovim runs its startup files and plugins' },
  { path: '~/.emacs', kind: 'file', what: 'Emacs runs its startup file' },
  { path: '~/.emacs.d', kind: 'directory', what: 'Emacs runs its startup files and packages' },
  { path: '~/.tmux.conf', kind: 'file', what: 'tmux configuration can run commands' },
  { path: '~/.config/direnv', kind: 'directory', what: 'direnv configuration and its allow list decide which .envrc files run' },
  { path: '~/.config/Code/User', kind: 'directory', what: 'VS Code user settings and tasks can start programs' },
  { path: '~/.xprofile', kind: 'file', what: 'runs at your next graphical login' },
  { path: '~/.xsession', kind: 'file', what: 'runs at your next graphical login' },
  { path: '~/.config/autostart', kind: 'directory', what: 'desktop autostart entries run at your next login' },
  { path: '~/.config/environment.d', kind: 'directory', what: 'systemd sets these variables (PATH, LD_PRELOAD) for your next login' },
  { path: '~/.config/systemd', kind: 'directory', what: 'systemd user units run outside the jail' },
  { path: '~/.config/srt-gw', kind: 'directory', what: "srt-gw's own configuration" },
]);

/**
 * What git reads from a git directory that can make it run a program or read another git
 * directory: protected in `.git` of every writable root and in every git directory a writable
 * root's repository uses (a worktree's, its common one, submodules'), found at start.
 */
export const GIT_DIRECTORY_PROTECTED: readonly BuiltInPath[] = Object.freeze([
  { path: 'hooks', kind: 'directory', what: 'git hooks run outside the jail on your next git command' },
  { path: 'config', kind: 'file', what: 'git configuration can name programs git runs (core.fsmonitor, core.hooksPath)' },
  { path: 'config.worktree', kind: 'file', what: 'per-worktree git configuration can name programs git runs (core.fsmonitor)' },
  { path: 'info', kind: 'directory', what: 'info/attributes selects the filters and diff drivers git runs on files' },
  // A stand-in for a missing commondir would break git (it refuses an empty one): protected when
  // present; one the command creates is held after the run (jail/planted-files.ts).
  { path: 'commondir', kind: 'file', what: 'commondir makes git read another git directory, with its own configuration and hooks', ifPresent: true },
]);

/**
 * Read-only inside the working directory and every allowWrite directory (the writable roots),
 * whether they exist or not: what the host runs or obeys later when a shell, git, direnv, an
 * editor or an agent starts in that directory. docs/run.md ("Hidden and protected paths") spells
 * out these lists for users: keep it in step.
 */
export const PROTECTED_IN_WRITABLE_ROOTS: readonly BuiltInPath[] = Object.freeze([
  ...GIT_DIRECTORY_PROTECTED.map((entry) => ({ ...entry, path: `.git/${entry.path}` })),
  ...['.bashrc', '.bash_profile', '.bash_login', '.profile', '.zshrc', '.zprofile', '.zshenv'].map((path) => ({
    path,
    kind: 'file' as const,
    what: 'a shell startup file runs in your next shell when this directory is a home',
  })),
  { path: '.gitconfig', kind: 'file', what: 'git configuration can name programs git runs when this directory is a home' },
  { path: '.gitmodules', kind: 'file', what: 'submodule definitions choose what git clones and checks out' },
  { path: '.ripgreprc', kind: 'file', what: 'ripgrep configuration can name programs it runs (--pre)' },
  { path: '.pre-commit-config.yaml', kind: 'file', what: 'pre-commit runs the programs it names on your next commit' },
  { path: '.envrc', kind: 'file', what: 'direnv runs it when you enter the directory' },
  { path: '.mcp.json', kind: 'file', what: 'MCP server definitions start programs' },
  // A stand-in for a missing policy file would be found by the next srt-gw run here: protected when
  // present; one the command creates is held after the run (jail/planted-files.ts).
  { path: '.srt-gw.yaml', kind: 'file', what: 'the srt-gw policy a run here discovers', ifPresent: true },
  { path: '.srt.json', kind: 'file', what: 'the srt settings a run here discovers', ifPresent: true },
  { path: '.vscode', kind: 'directory', what: 'VS Code tasks and settings can start programs' },
  { path: '.idea', kind: 'directory', what: 'JetBrains run configurations can start programs' },
  { path: '.claude', kind: 'directory', what: 'Claude Code settings and hooks start programs' },
  { path: '.cursor', kind: 'directory', what: 'Cursor settings can start programs' },
]);
