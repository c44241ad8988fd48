// STAND-IN for the Moddable SDK's `text/decoder` ($(MODULES)/data/text/decoder), which is native on the
// device: the harness bundles this file wherever firmware imports `text/decoder`. xsnap compiles the
// same C (textdecoder.c, an older revision: streamed input split inside a character is handled
// differently) into its global TextDecoder, kept aside by the Moddable runtime prelude before it
// deletes the global. Like the SDK's: only the label "utf-8" (RangeError otherwise), `fatal`
// (TypeError "invalid utf-8"), `ignoreBOM`, and `decode(bytes, { stream })`.
import { xsnapText } from '../../xs/hostText';

const TextDecoderStandIn = xsnapText().TextDecoder;
export default TextDecoderStandIn;
