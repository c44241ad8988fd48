// The receipts room: a sale's receipt by the code the meter showed (service.ts), as JSON, PDF
// (render.ts) or e-mail through the drivers' outbox (mail.ts, routes.ts).
export { EmailAdapter } from './mail';
export { receiptPdf, receiptText } from './render';
export { defaultReceiptLimits, type ReceiptLimits, receiptRoutes } from './routes';
export { type ChainProof, type Receipt, ReceiptService } from './service';
