// Call-in (dial-up) through the cellular modem: the platform rings or texts the meter's number to
// ask it to connect and report. The modem hands over who called; the firmware decides what to do.

export interface CallInEvent {
  kind: 'call' | 'sms';
  /** The caller's number as the network presented it (+CLIP / the SMS originating address). */
  number: string;
  /** The SMS text (never trusted: only the sender's number counts). */
  text?: string;
}

export interface CallInSource {
  /** Set by the firmware; called for every incoming call (once, before hang-up) and every SMS. */
  onCallIn: ((event: CallInEvent) => void) | undefined;
}
