// STAND-IN for the Moddable SDK's `text/encoder` ($(MODULES)/data/text/encoder), which is native on the
// device: the harness bundles this file wherever firmware imports `text/encoder`. xsnap compiles the
// same C (textencoder.c, an older revision) into its global TextEncoder, which the Moddable runtime
// prelude keeps aside before deleting the global: the SDK module's default export is that class.
import { xsnapText } from '../../xs/hostText';

const TextEncoderStandIn = xsnapText().TextEncoder;
export default TextEncoderStandIn;
