/** The example workflows, bundled together for a worker of the operator's (and for the tests). */
export { greeterAgent } from './greeter-agent.js';
export { twoFactorLogin } from './two-factor-login.js';
export { fileAgent } from './file-agent.js';
