// The version of this firmware build, as its release is signed (firmware/units/firmwareVerify.ts):
// raise it with every release image, above the last one (a meter refuses any version at or below
// the highest it confirmed).
export const FIRMWARE_VERSION = 1;
