// What an agent asks of the server (its policy, heartbeats) and what admins see of
// their agents.
import { Router } from 'express';
import { assertMachineName } from '../../src/format/image-ref.js';
import { requireRole } from '../auth.js';
import { agentIsSilent } from '../monitoring/monitor.js';
import type { ServerConfig } from '../config.js';
import { jsonBody, principalOf } from '../http.js';
import type { Policies } from '../policies.js';
import { agentView, type Runs } from '../runs.js';
import { accepts } from '../api-schemas/validate.js';

export function agentRoutes(runs: Runs, policies: Policies, config: ServerConfig, now: () => number): Router {
  const router = Router();
  const agentSettings = () => ({
    heartbeatSeconds: config.agents.heartbeatSeconds,
    retryInitialSeconds: config.agents.retryInitialSeconds,
    retryMaxSeconds: config.agents.retryMaxSeconds,
  });

  router.get('/agent/policy', accepts('agentPolicy'), (_request, response) => {
    const principal = principalOf(response);
    requireRole(principal, 'machine');
    const machine = principal.machine!;
    const changed = policies.changedAt(machine);
    response.json({
      machine,
      policy: policies.effective(machine),
      policyChangedAt: changed ? new Date(changed).toISOString() : null,
      agent: agentSettings(),
      serverTime: new Date(now()).toISOString(),
    });
  });

  router.post('/agent/heartbeat', jsonBody, accepts('agentHeartbeat'), (request, response) => {
    const principal = principalOf(response);
    const agent = runs.heartbeat(principal, (request.body ?? {}) as Record<string, unknown>);
    const changed = policies.changedAt(agent.machine);
    response.json({
      agent: agentView(agent),
      policyChangedAt: changed ? new Date(changed).toISOString() : null,
      serverTime: new Date(now()).toISOString(),
    });
  });

  router.get('/agents', accepts('listAgents'), (_request, response) => {
    requireRole(principalOf(response), 'admin', 'auditor');
    // `silent`: the same judgement as the agent-silent incident, so the listing and the alerts agree.
    response.json({
      agents: runs
        .agents()
        .map((agent) => ({ ...agentView(agent), silent: agentIsSilent(agent.lastHeartbeatAt, now(), config) })),
    });
  });

  router.delete('/agents/:machine', accepts('forgetAgent'), (request, response) => {
    requireRole(principalOf(response), 'admin');
    const machine = assertMachineName(request.params.machine, 'machine in the path');
    runs.forgetAgent(machine);
    response.json({ forgotten: machine });
  });
  return router;
}
