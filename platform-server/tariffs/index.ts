// The tariffs room: tariff documents, their push to meters (0x85) and acknowledgement (0x05), quotes.
export { startTariffs, TariffService, tariffRoutes, TariffRefused } from './service';
