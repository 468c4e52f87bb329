/** The console's shell: login gate, navigation, Log out, and the page for the current route. */
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, onUnauthorized } from './api';
import { connectLive, disconnectLive } from './live';
import { AgentsPage } from './pages/Agents';
import { ChannelDetailPage } from './pages/ChannelDetail';
import { ChannelsPage } from './pages/Channels';
import { LoginPage } from './pages/Login';
import { PoliciesPage } from './pages/Policies';
import { SignalsPage } from './pages/Signals';
import { VaultsPage } from './pages/Vaults';
import type { SystemInfo } from './types';
import { useRoute } from './ui';
import './styles.css';

const NAV = [
  ['channels', 'Channels'],
  ['policies', 'Policies'],
  ['agents', 'Agents'],
  ['vaults', 'Vaults'],
  ['signals', 'Signals'],
] as const;

function App() {
  const [auth, setAuth] = useState<'unknown' | 'in' | 'out'>('unknown');
  const [system, setSystem] = useState<SystemInfo | null>(null);
  const route = useRoute();

  useEffect(() => {
    api('GET', '/api/session').then(
      () => setAuth('in'),
      () => setAuth('out'),
    );
    return onUnauthorized(() => setAuth('out'));
  }, []);
  useEffect(() => {
    if (auth !== 'in') {
      disconnectLive();
      return;
    }
    connectLive(() => {
      api('GET', '/api/session').then(
        () => connectLive(() => setAuth('out')),
        () => setAuth('out'),
      );
    });
    api<SystemInfo>('GET', '/api/system').then(setSystem, () => undefined);
  }, [auth]);

  // A new page: move focus to its content, so keyboard and screen-reader users start there (not in the nav).
  const path = route.slice(0, 2).join('/');
  const firstPath = useRef(path);
  useEffect(() => {
    if (path !== firstPath.current) document.getElementById('main')?.focus();
  }, [path]);

  if (auth === 'unknown') return <p class="loading">Loading…</p>;
  if (auth === 'out') return <LoginPage onLoggedIn={() => setAuth('in')} />;

  const logout = async (): Promise<void> => {
    await api('DELETE', '/api/session').catch(() => undefined);
    setAuth('out');
  };
  const [section = 'channels', id, tab] = route;
  let page;
  if (section === 'channels' && id) page = <ChannelDetailPage id={id} tab={tab} system={system} />;
  else if (section === 'policies') page = <PoliciesPage />;
  else if (section === 'agents') page = <AgentsPage />;
  else if (section === 'vaults') page = <VaultsPage />;
  else if (section === 'signals') page = <SignalsPage />;
  else page = <ChannelsPage system={system} />;

  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Wharf</span>
        <nav aria-label="Main">
          {NAV.map(([path, label]) => (
            <a href={`#/${path}`} aria-current={section === path ? 'page' : undefined}>
              {label}
            </a>
          ))}
          {system?.temporal.uiUrl && (
            <a href={system.temporal.uiUrl} target="_blank" rel="noreferrer">
              Temporal UI ↗
            </a>
          )}
        </nav>
        <button type="button" class="secondary" onClick={() => void logout()}>
          Log out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
