/** Plain counters the proxy renders (Envoy-like names: `<type>.update_success`, ...). */
export class XdsStats {
  connectedState = 0;
  reconnects = 0;
  server = '';
  private readonly perType = new Map<string, TypeStats>();

  type(statName: string): TypeStats {
    let s = this.perType.get(statName);
    if (s === undefined) this.perType.set(statName, (s = new TypeStats()));
    return s;
  }

  snapshot(): Record<string, number | string> {
    const out: Record<string, number | string> = {
      'control_plane.connected_state': this.connectedState,
      'control_plane.reconnects': this.reconnects,
      'control_plane.server': this.server,
    };
    for (const [name, s] of this.perType) {
      out[`${name}.update_attempt`] = s.updateAttempt;
      out[`${name}.update_success`] = s.updateSuccess;
      out[`${name}.update_rejected`] = s.updateRejected;
      out[`${name}.update_empty`] = s.updateEmpty;
      out[`${name}.init_fetch_timeout`] = s.initFetchTimeout;
      out[`${name}.version_text`] = s.versionText;
      out[`${name}.last_error`] = s.lastError;
    }
    return out;
  }
}

export class TypeStats {
  updateAttempt = 0;
  updateSuccess = 0;
  updateRejected = 0;
  updateEmpty = 0;
  initFetchTimeout = 0;
  versionText = '';
  lastError = '';
}
