// The agent's own small files in its state directory: the schedule's progress
// (agent-state.json) and the last policy the server gave (policy.json), so a restarted
// agent knows what it already ran and what to do while the server is away.
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import type { PolicyAnswer } from './api.js';

export interface AgentState {
  /** The latest occurrence of the schedule that was run or deliberately passed over. */
  lastScheduledFor: number | null;
}

export class AgentStateFiles {
  constructor(readonly directory: string) {}

  readState(): Promise<AgentState | null> {
    return this.readJson<AgentState>('agent-state.json');
  }

  writeState(state: AgentState): Promise<void> {
    return this.writeJson('agent-state.json', state);
  }

  readPolicy(): Promise<PolicyAnswer | null> {
    return this.readJson<PolicyAnswer>('policy.json');
  }

  writePolicy(answer: PolicyAnswer): Promise<void> {
    return this.writeJson('policy.json', answer);
  }

  private async writeJson(name: string, value: unknown): Promise<void> {
    await writeFileAtomic(path.join(this.directory, name), `${JSON.stringify(value, null, 2)}\n`, {
      mode: 0o600,
      directoryMode: 0o700,
    });
  }

  /** A missing or unreadable file is no state at all: the agent starts afresh. */
  private async readJson<T>(name: string): Promise<T | null> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.directory, name), 'utf8')) as T;
    } catch {
      return null;
    }
  }
}
