/**
 * A tiny agent written as a Temporal workflow (agent kind `temporal`). Wharf starts it as a child workflow
 * for every message that reaches the agent, on the task queue the operator registered, with
 * `{channel, chat, sender, text, history}`; whatever Markdown it returns as `reply` is formatted and sent
 * back to the chat (an empty reply sends nothing).
 *
 * Register it: `POST /api/agents {"id": "greeter", "kind": "temporal", "workflowType": "greeterAgent",
 * "taskQueue": "my-agents"}` and run a worker for `my-agents` that bundles this file.
 */

/** What Wharf passes to an agent workflow. */
export interface AgentWorkflowInput {
  channel: string;
  chat: { kind: 'direct' | 'group'; id: string; name?: string };
  sender: { address: string; name?: string };
  text: string;
  /** Recent turns of this chat, oldest first. */
  history: Array<{ role: 'user' | 'assistant'; text: string; at: string }>;
}

/** What an agent workflow returns. */
export interface AgentWorkflowOutput {
  reply: string;
}

/** Greets the sender by name, counts the turns it has seen, and stays silent on "quiet". */
export async function greeterAgent(input: AgentWorkflowInput): Promise<AgentWorkflowOutput> {
  if (input.text.trim().toLowerCase() === 'quiet') return { reply: '' };
  const turns = input.history.filter((t) => t.role === 'user').length + 1;
  return { reply: `Hello **${input.sender.name ?? input.sender.address}**, you said: _${input.text}_ (turn ${turns})` };
}
