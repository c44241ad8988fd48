/*
 * ParkLink: the ESP32 hardware random number generator as an XS host function.
 * esp_fill_random() reads the RNG peripheral, whose entropy comes from RF noise while Wi-Fi or
 * Bluetooth is running (ESP-IDF "Random Number Generation"); the meter's radio is on whenever it
 * holds keys, and boot-time key generation waits for the link.
 */

#include "xsmc.h"
#include "xsHost.h"
#include "esp_random.h"

void xs_parklink_trng_fill(xsMachine *the)
{
	void *data;
	xsUnsignedValue size;

	xsmcGetBufferWritable(xsArg(0), &data, &size);
	esp_fill_random(data, size);
}
