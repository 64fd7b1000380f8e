/*
 * A stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks. Every
 * Go (>= 1.24) windows binary looks up ProcessPrng in it at start-up and
 * dies without it. This one fills the buffer from RtlGenRandom
 * (advapi32's SystemFunction036), which Wine has. Test prefixes only:
 * never ship it.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI DllEntry(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
	(void)inst; (void)reason; (void)reserved;
	return TRUE;
}

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
