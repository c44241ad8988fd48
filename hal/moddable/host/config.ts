// mcconfig generates the `mc/config` module for every platform but the x-cli ones; the SDK's lin
// preference module reads config.file.root from it, so the host build supplies its own: the
// preferences file (modpreferences.json) lives in the working directory, beside the store files.
export default Object.freeze({ file: Object.freeze({ root: './' }) });
