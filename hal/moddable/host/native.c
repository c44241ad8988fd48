/*
 * The host program of ParkLink's x-cli-lin build: the Moddable runtime as a plain Linux command,
 * without the GTK simulator. It clones the preloaded machine that mcconfig linked in, imports the
 * manifest's creation.main, then runs the GLib main loop that the SDK's lin timer and socket
 * modules schedule on, until the program calls exit().
 */
#include "xsAll.h"
#include "mc.xs.h"
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

/* XS calls this on a fatal condition (stack or memory exhausted, unhandled exception). */
void fxAbort(xsMachine* the, int status)
{
	static const char* const reasons[] = {
		"debugger", "fatal check", "stack overflow", "memory full", "JIT", "unhandled exception",
		"not enough keys", "too much computation", "unhandled rejection",
	};
	const char* reason = (status >= 0 && status < (int)(sizeof(reasons) / sizeof(reasons[0]))) ? reasons[status] : "unknown";
	fprintf(stderr, "### XS abort: %s (%d)\n", reason, status);
	fflush(stdout);
	exit(100 + status);
}

/* The build carries no resources (no images or fonts). */
const void* mcGetResource(xsMachine* the, char* path, size_t* size)
{
	*size = 0;
	return NULL;
}

void xs_parklink_host_exit(xsMachine* the)
{
	fflush(stdout);
	exit(xsToInteger(xsArg(0)));
}

void xs_parklink_host_getenv(xsMachine* the)
{
	const char* value = getenv(xsToString(xsArg(0)));
	if (value)
		xsResult = xsString((char*)value);
}

/* The XS memory in use, for the device budget, after a collection: slots in the heap (live, peak),
 * chunk bytes (live, peak: the most allocated between collections), the deepest stack use and the stack's size in slots (the peak only in an
 * instrumented build, mcconfig -i). Counts, not bytes: a slot is 16 bytes on the ESP32, 32 here. */
void xs_parklink_host_heap(xsMachine* the)
{
	xsCollectGarbage(); /* what is live, not what garbage has piled up since the last collection */
	xsResult = xsNewArray(0);
	xsVars(1);
	xsVar(0) = xsInteger((xsIntegerValue)the->currentHeapCount);
	xsCall1(xsResult, xsID_push, xsVar(0));
	xsVar(0) = xsInteger((xsIntegerValue)the->peakHeapCount);
	xsCall1(xsResult, xsID_push, xsVar(0));
	xsVar(0) = xsInteger((xsIntegerValue)the->currentChunksSize);
	xsCall1(xsResult, xsID_push, xsVar(0));
	xsVar(0) = xsInteger((xsIntegerValue)the->peakChunksSize);
	xsCall1(xsResult, xsID_push, xsVar(0));
#ifdef mxInstrument
	xsVar(0) = xsInteger((xsIntegerValue)(the->stackTop - the->stackPeak));
#else
	xsVar(0) = xsInteger(-1);
#endif
	xsCall1(xsResult, xsID_push, xsVar(0));
	xsVar(0) = xsInteger((xsIntegerValue)(the->stackTop - the->stackBottom));
	xsCall1(xsResult, xsID_push, xsVar(0));
}

int main(int argc, char* argv[])
{
	static txMachine root;
	txMachine* machine = &root;
	txPreparation* preparation = xsPreparation();
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0); /* a line at a time, so that a pipe shows events as they happen */
	c_memset(machine, 0, sizeof(txMachine));
	machine->preparation = preparation;
	machine->keyArray = preparation->keys;
	machine->keyCount = (txID)preparation->keyCount + (txID)preparation->creation.initialKeyCount;
	machine->keyIndex = (txID)preparation->keyCount;
	machine->nameModulo = preparation->nameModulo;
	machine->nameTable = preparation->names;
	machine->symbolModulo = preparation->symbolModulo;
	machine->symbolTable = preparation->symbols;
	machine->stack = &preparation->stack[0];
	machine->stackBottom = &preparation->stack[0];
	machine->stackTop = &preparation->stack[preparation->stackCount];
	machine->firstHeap = &preparation->heap[0];
	machine->freeHeap = &preparation->heap[preparation->heapCount - 1];
	machine->aliasCount = (txID)preparation->aliasCount;
	machine = fxCloneMachine(&preparation->creation, machine, "parklink", NULL);

	xsBeginHost(machine);
	{
		xsVars(1);
		xsTry {
			xsVar(0) = xsAwaitImport(preparation->main, XS_IMPORT_NAMESPACE);
		}
		xsCatch {
			fprintf(stderr, "### %s\n", xsToString(xsException));
			failed = 1;
		}
	}
	xsEndHost(machine);
	fflush(stdout);
	if (failed)
		return 1;
	g_main_loop_run(g_main_loop_new(NULL, FALSE));
	return 0;
}

/* Random bytes from the Linux kernel (getrandom), as the ESP32 build takes them from its TRNG. */
#include <sys/random.h>
void xs_parklink_host_random(xsMachine* the)
{
	void* bytes = xsToArrayBuffer(xsArg(0));
	size_t length = xsGetArrayBufferLength(xsArg(0));
	size_t done = 0;
	while (done < length) {
		ssize_t got = getrandom((char*)bytes + done, length - done, 0);
		if (got < 0)
			xsUnknownError("getrandom failed");
		done += (size_t)got;
	}
}
