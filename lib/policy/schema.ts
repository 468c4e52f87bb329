/**
 * The Cedar schema operators' policies are validated against (SPEC §6), and the built-in default policy.
 * Kept as Cedar schema text rather than JSON so it reads like the documentation operators see.
 */

/** The Cedar namespace every Wharf entity type and action lives in. */
export const POLICY_NAMESPACE = 'Policy';

/** The Cedar schema text (namespace `Policy`). */
export const POLICY_SCHEMA = `namespace ${POLICY_NAMESPACE} {
  entity Agent;
  // A concrete channel (Policy::Channel::"<channel id>") has its provider channel as parent:
  // Policy::Channel::"whatsapp_cloud" or Policy::Channel::"whatsapp_user".
  entity Channel in [Channel];
  entity Message in [Channel] {
    sender: { address: String, paired: Bool, name?: String, userId?: String },
    chat: { kind: String, id: String, name?: String },
  };
  action receive_message appliesTo { principal: Agent, resource: Message };
}
`;

/** The id under which the built-in default policy is reported in decision reasons. */
export const DEFAULT_POLICY_ID = 'default';

/**
 * The built-in default policy text, always in force alongside the operator's policies.
 *
 * SPEC §6 quotes the default as `when { resource.sender.paired }`, while SPEC §5 says the default must not let
 * group messages through. Both hold only if the default also requires a direct chat: folding group gating into
 * the caller (say, passing `paired: false` for group senders) would make `resource.sender.paired` lie to
 * operators' own policies. So the default is explicit, and groups need an operator policy.
 */
export const DEFAULT_POLICY =
  'permit(principal, action == Policy::Action::"receive_message", resource) when { resource.sender.paired && resource.chat.kind == "direct" };';
